export { openDatabase, type Db, type Migration, type OpenDatabaseOptions } from "./open-database.js";
