export type { SupermachineErrorOptions } from "./supermachine-error.js";
export { isSupermachineError, SupermachineError } from "./supermachine-error.js";
