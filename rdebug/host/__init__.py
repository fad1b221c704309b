"""The host side of the machine's input seam: terminal, files, sockets, key maps, audio files."""
