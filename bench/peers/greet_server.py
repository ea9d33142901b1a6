# The tutorial's server: accept, send the greeting, close, forever. Bound to
# 127.0.0.1 on a port from the system instead of ('', 12345), sending bytes
# (Python 3), and without the per-connection print, which every server here
# leaves out alike.
import socket
import sys

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(511)
print("listening %d" % s.getsockname()[1], flush=True)
greeting = (sys.argv[1] if len(sys.argv) > 1 else "Thank you for connecting").encode()
while True:
    c, addr = s.accept()
    c.sendall(greeting)
    c.close()
