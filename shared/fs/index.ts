export { keepToOwner, makeOwnersDir } from "./owners-files.js";
