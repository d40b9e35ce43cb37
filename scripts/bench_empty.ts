// An empty module: the start-up baseline of `deno task bench` (`deno run` of nothing).
