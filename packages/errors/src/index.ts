export { SupermachineError, isSupermachineError } from "./supermachine-error.js";
export type { SupermachineErrorOptions } from "./supermachine-error.js";
