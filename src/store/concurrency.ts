/**
 * Bounded parallelism for the many small requests of a large manifest.
 */

/**
 * Applies `fn` to every item with at most `limit` calls in flight; resolves
 * to the results in input order. After a call fails no new call starts, and
 * the promise rejects with the first failure once every started call has
 * ended, so that a caller cleaning up after a failure sees everything that
 * was written.
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
