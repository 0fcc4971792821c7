// Ports on this machine, checked before and after a process takes them: whether one can be bound (with an
// error that names what it was for) and whether something accepts connections on one.
import { connect, createServer } from "node:net";

/** Throws a clear error when `host:port` cannot be bound (in use, or an address this machine does not have). */
export async function checkBindable(host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") reject(new Error(`${host}:${port} (${what}) is already in use`));
      else if (err.code === "EADDRNOTAVAIL")
        reject(
          new Error(
            `${host} (${what}) is not an address of this machine: the local mesh gives every process its own 127.0.0.x (on macOS: sudo ifconfig lo0 alias ${host})`,
          ),
        );
      else reject(new Error(`${host}:${port} (${what}): ${err.message}`));
    });
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
