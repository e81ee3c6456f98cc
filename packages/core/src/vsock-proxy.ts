import { forwardTo, type GuestConnector } from "./tcp-forwarder.js";
import { UnixSocketServer } from "./unix-server.js";

/**
 * Serves `Vm.vsockPath`: a unix socket whose every connection is spliced to
 * a new byte stream into the guest.
 */
export function listenVsockProxy(path: string, connect: GuestConnector): UnixSocketServer {
  return UnixSocketServer.listen(path, forwardTo(connect), { pauseOnConnect: true, allowHalfOpen: true });
}
