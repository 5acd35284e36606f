/**
 * The Go worker library passes every conformance scenario
 * (test/conformance), through its adapter built by `make go-build`. Without
 * Go sources in the tree the tests say so and pass; with them, a binary
 * that is missing is built first.
 */
import { goWorker } from '../conformance/worker-commands.js';
import { conformanceTests } from './conformance-suite.js';

conformanceTests('go', () => goWorker());
