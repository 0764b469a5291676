"""host/session"""
