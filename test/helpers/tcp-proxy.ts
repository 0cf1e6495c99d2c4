/**
 * A TCP proxy on loopback in front of Redis. It records the direction and time of every
 * chunk, so a test can count round trips, and it can hold traffic to play a Redis that
 * stopped answering.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface Chunk {
  direction: 'up' | 'down';
  at: number;
  /** The first bytes, for debugging. */
  head: string;
}

export interface TcpProxy {
  url: string;
  chunks: Chunk[];
  /** While true, traffic is held back in both directions (a Redis that stopped answering); released in order. */
  hold: boolean;
  release(): void;
  /** Round trips since `from`: each time the client speaks after the server answered. */
  roundTrips(from: number): number;
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
          proxy.chunks.push({ direction, at: Date.now(), head: data.subarray(0, 120).toString('latin1') });
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
