import { mkdirSync, rmSync } from "node:fs";
import Database from "better-sqlite3";
for (const cache of [-2000, -16000, -64000]) {
  rmSync("/tmp/scratch/pc", { recursive: true, force: true });
  mkdirSync("/tmp/scratch/pc", { recursive: true });
  const db = new Database("/tmp/scratch/pc/x.db");
  db.pragma("journal_mode = WAL"); db.pragma("synchronous = NORMAL"); db.pragma(`cache_size = ${cache}`);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  const ins = db.prepare("INSERT INTO t (v) VALUES (?)");
  db.transaction(() => { for (let i = 0; i < 20000; i++) ins.run(Buffer.alloc(500)); })();
  db.prepare("SELECT count(*), sum(length(v)) FROM t").get();
  const get = db.prepare("SELECT v FROM t WHERE id = ?");
  for (let i = 1; i <= 20000; i++) get.get(i);
  const tx = db.transaction((i: number) => ins.run(Buffer.alloc(100)));
  for (let i = 0; i < 2000; i++) tx(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < 20000; i++) tx(i);
  console.log("cache", cache, (Number(process.hrtime.bigint() - t) / 20000 / 1000).toFixed(2), "µs per tiny tx");
  db.close();
}
