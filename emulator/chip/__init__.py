"""emulator/chip"""
