export { createSignet } from './signet.js';
export type { CreateSignetOptions, Signet } from './signet.js';
export { loadConfig, describeOptions, ConfigError } from './config.js';
export type { SignetConfig, SigningAlgorithm } from './config.js';
export { SignetError, ERROR_CATALOG } from './errors.js';
export type { ErrorCode } from './errors.js';
