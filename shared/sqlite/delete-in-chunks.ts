import { setImmediate } from "node:timers/promises";

/** Rows one statement of deleteInChunks deletes at most. */
const DELETE_CHUNK = 1000;

/**
 * Deletes rows a chunk at a time until a chunk comes back short, the event
 * loop turning between chunks, so a large delete never holds a service's only
 * thread (or its database) for long. `deleteChunk(limit)` deletes at most
 * `limit` rows and says how many; `going()` turning false (a service closing)
 * stops it between chunks. Answers how many rows went.
 */
export async function deleteInChunks(deleteChunk: (limit: number) => number, going: () => boolean = () => true, chunk = DELETE_CHUNK): Promise<number> {
  let deleted = 0;
  for (let last = chunk; last === chunk && going(); await setImmediate()) {
    last = deleteChunk(chunk);
    deleted += last;
  }
  return deleted;
}
