/**
 * A TCP proxy on loopback in front of Redis. It records the direction, time and bytes of
 * every chunk, so a test can count round trips and the commands a client sent (from the
 * wire, not from the code's own counters), and it can hold traffic to play a Redis that
 * stopped answering.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface Chunk {
  direction: 'up' | 'down';
  at: number;
  /** The first bytes, for debugging. */
  head: string;
  data: Buffer;
}

export interface TcpProxy {
  url: string;
  chunks: Chunk[];
  /** While true, traffic is held back in both directions (a Redis that stopped answering); released in order. */
  hold: boolean;
  release(): void;
  /** Round trips since `from`: each time the client speaks after the server answered. */
  roundTrips(from: number): number;
  /**
   * The names of the commands clients sent since chunk `from` (upper case, in order), read
   * from the RESP arrays on the wire; `from` must be a moment between commands.
   */
  commands(from: number): string[];
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const held: (() => void)[] = [];
  const proxy: TcpProxy = {
    url: '',
    chunks: [],
    hold: false,
    release() {
      proxy.hold = false;
      for (const flush of held.splice(0)) flush();
    },
    roundTrips(from) {
      let trips = 0;
      let last: Chunk['direction'] | undefined;
      for (const chunk of proxy.chunks.slice(from)) {
        if (chunk.direction === 'up' && last !== 'up') trips += 1;
        last = chunk.direction;
      }
      return trips;
    },
    commands(from) {
      const data = Buffer.concat(
        proxy.chunks
          .slice(from)
          .filter((chunk) => chunk.direction === 'up')
          .map((chunk) => chunk.data),
      );
      const names: string[] = [];
      let at = 0;
      const line = () => {
        const end = data.indexOf('\r\n', at);
        if (end < 0) throw new Error(`incomplete RESP line at byte ${at}`);
        const text = data.toString('latin1', at, end);
        at = end + 2;
        return text;
      };
      while (at < data.length) {
        const header = line();
        if (!header.startsWith('*'))
          throw new Error(`expected a RESP array at byte ${at}, got ${JSON.stringify(header)}`);
        const count = Number(header.slice(1));
        for (let index = 0; index < count; index += 1) {
          const length = Number(line().slice(1));
          if (index === 0) names.push(data.toString('latin1', at, at + length).toUpperCase());
          at += length + 2;
        }
      }
      return names;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const pipe = (from: Socket, to: Socket, direction: Chunk['direction']) => {
      from.on('data', (data) => {
        const forward = () => {
          proxy.chunks.push({ direction, at: Date.now(), head: data.subarray(0, 120).toString('latin1'), data });
          to.write(data);
        };
        if (proxy.hold) held.push(forward);
        else forward();
      });
    };
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `redis://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
