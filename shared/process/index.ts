export { configOrExit, runMain, type Stoppable } from "./run-main.js";
export { freePort, freePorts } from "./free-port.js";
export { repeat, type Repeating } from "./repeat.js";
export { nodeEntry, nodeFlags } from "./node-entry.js";
export { turnOffPretenuring } from "./v8-heap.js";
export { ABANDON_MS, drain, settlesWithin } from "./shutdown.js";
export { listen, listenRefusal } from "./listen.js";
