// Calls made in one turn of the event loop, handled together: `all` gets their arguments in the
// order they came and gives back one answer for each, in the same order, so each call succeeds or
// fails on its own. A call made while a turn's `all` runs starts the next turn's.
interface Call<T, R> {
  item: T;
  resolve: (r: Promise<R>) => void;
}

export function sameTurn<T, R>(all: (items: T[]) => Promise<R>[]): (item: T) => Promise<R> {
  let turn: Call<T, R>[] | undefined;
  const handle = (calls: Call<T, R>[]) => {
    turn = undefined;
    let answers: Promise<R>[];
    try {
      answers = all(calls.map((c) => c.item));
    } catch (err) {
      answers = calls.map(() => Promise.reject(err));
    }
    calls.forEach((c, i) => c.resolve(answers[i]!));
  };
  return (item) =>
    new Promise<R>((resolve) => {
      if (!turn) setImmediate(handle, (turn = []));
      turn.push({ item, resolve });
    });
}
