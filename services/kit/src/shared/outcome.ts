// Interceptors that record how a call ended (metrics, spans) all need the same try/catch/finally; written once.

/**
 * Runs `call` and then `settle(error)` however it ended (`error` undefined when it succeeded); the result or
 * the error passes through unchanged.
 */
export async function withOutcome<T>(call: () => Promise<T>, settle: (error: unknown) => void): Promise<T> {
  let error: unknown;
  try {
    return await call();
  } catch (err) {
    error = err;
    throw err;
  } finally {
    settle(error);
  }
}
