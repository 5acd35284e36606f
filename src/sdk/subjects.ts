/**
 * The data subjects of the worker SDK, as `src/bus` defines them for every
 * worker: each edge of the job graph is its own NATS subject, so that a
 * task publishes each record only to the downstream task it is meant for
 * and a reader's subscription delivers exactly one input.
 *
 * With `<cp>` the job's control prefix (`<p>.<job>`, from the welcome):
 *   <cp>.data.<from>.<to>   records and barriers from task `from` to task `to`
 */
export { edgeOfSubject, edgeSubject, inputSubjectsOf, type Edge } from '../bus/index.js';
/** The edge of a data subject under a control prefix (the same as `edgeOfSubject`). */
export { edgeOfSubject as taskOfEdgeSubject } from '../bus/index.js';
