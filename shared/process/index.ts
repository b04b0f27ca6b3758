export { runMain, type Stoppable } from "./run-main.js";
