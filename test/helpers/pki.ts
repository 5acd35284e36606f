/** The throwaway PKI of TLS tests: one copy, in src/dev, shared with the fault suite and `make cluster`. */
export { makeTestPki, type TestPki } from '../../src/dev/pki.js';
