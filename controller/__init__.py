"""ioinctl: the ioin-fleet controller (pushes hooks to many agents, shows what comes back).

gRPC's core logs each failed TLS handshake on stderr at INFO level ("Handshake failed ..."): a
thousand hosts with a wrong CA would print thousands of lines around the one short line per host
ioinctl prints. Unless the user asks for more with GRPC_VERBOSITY, only its errors are shown. This
is set here, before anything imports grpc.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
