"""emulator/board"""
