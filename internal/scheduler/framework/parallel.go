package framework

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
)

// Parallel runs fn(i) for i in [0, n) on up to workers goroutines, handing out
// indexes in chunks; it stops handing out new ones once ctx is done.
func Parallel(ctx context.Context, workers, n int, fn func(i int)) {
	if n <= 0 {
		return
	}
	chunk := max(1, int(math.Sqrt(float64(n))))
	if workers <= 1 || n <= chunk {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			fn(i)
		}
		return
	}
	workers = min(workers, (n+chunk-1)/chunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := int(next.Add(int64(chunk))) - chunk
				if start >= n {
					return
				}
				for i := start; i < min(start+chunk, n); i++ {
					fn(i)
				}
			}
		}()
	}
	wg.Wait()
}
