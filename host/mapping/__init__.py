"""host/mapping"""
