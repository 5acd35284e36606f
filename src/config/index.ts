/** Configuration of the coordinator process. */
export * from './config.js';
