/**
 * The TypeScript SDK passes every conformance scenario (test/conformance).
 */
import { TS_WORKER } from '../conformance/worker-commands.js';
import { conformanceTests } from './conformance-suite.js';

conformanceTests('ts', () => TS_WORKER);
