"""host/plots"""
