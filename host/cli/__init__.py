"""host/cli"""
