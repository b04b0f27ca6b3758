import { expect, test } from "vitest";
import { deleteInChunks } from "./delete-in-chunks.js";

/** A table of `rows` rows, deleted `limit` at a time; records each chunk and whether the event loop turned before it. */
function table(rows: number) {
  let left = rows;
  let turned = true;
  const chunks: { limit: number; deleted: number; afterTurn: boolean }[] = [];
  const deleteChunk = (limit: number) => {
    const deleted = Math.min(limit, left);
    left -= deleted;
    chunks.push({ limit, deleted, afterTurn: turned });
    turned = false;
    setImmediate(() => (turned = true));
    return deleted;
  };
  return { deleteChunk, chunks, left: () => left };
}

test("deletes a chunk at a time until a chunk comes back short, the event loop turning between chunks", async () => {
  const rows = table(25);
  expect(await deleteInChunks(rows.deleteChunk, () => true, 10)).toBe(25);
  expect(rows.chunks).toEqual([
    { limit: 10, deleted: 10, afterTurn: true },
    { limit: 10, deleted: 10, afterTurn: true },
    { limit: 10, deleted: 5, afterTurn: true },
  ]);
});

test("a full last chunk is followed by one that finds nothing", async () => {
  const rows = table(20);
  expect(await deleteInChunks(rows.deleteChunk, () => true, 10)).toBe(20);
  expect(rows.chunks.map((c) => c.deleted)).toEqual([10, 10, 0]);
});

test("stops between chunks once going() turns false (a service closing)", async () => {
  const rows = table(100);
  let going = true;
  const done = deleteInChunks(rows.deleteChunk, () => going, 10);
  going = false;
  expect(await done).toBe(10);
  expect(rows.left()).toBe(90);
});
