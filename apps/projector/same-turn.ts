// Calls made in one turn of the event loop, handled together: `all` gets their arguments in the
// order they came and answers each in the same order; if it fails, every call of that turn fails.
// A call made while a turn's `all` runs starts the next turn's.
interface Call<T, R> {
  item: T;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export function sameTurn<T, R>(all: (items: T[]) => Promise<R[]>): (item: T) => Promise<R> {
  let turn: Call<T, R>[] | undefined;
  const handle = (calls: Call<T, R>[]) => {
    turn = undefined;
    all(calls.map((c) => c.item)).then(
      (results) => calls.forEach((c, i) => c.resolve(results[i]!)),
      (err: unknown) => calls.forEach((c) => c.reject(err)),
    );
  };
  return (item) =>
    new Promise<R>((resolve, reject) => {
      if (!turn) setImmediate(handle, (turn = []));
      turn.push({ item, resolve, reject });
    });
}
