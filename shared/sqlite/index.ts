export { claimSoleWriter, holdExclusively, inUse } from "./in-use.js";
export { openDatabase, type Db, type Migration, type OpenDatabaseOptions } from "./open-database.js";
export { untimed, type TransactionTimer } from "./transaction-timer.js";
export { startBackgroundCheckpoints, type BackgroundCheckpoints, type BackgroundCheckpointOptions } from "./background-checkpoints.js";
export { keysetPages } from "./keyset-pages.js";
export { boundLimit } from "./bound-limit.js";
export { storageError } from "./storage-errors.js";
export { deleteInChunks } from "./delete-in-chunks.js";
