// The Go anchor of the load benchmark: the same loop as HttpUtil.Load's client (C workers, GETs, body read to
// its end, a pool of C connections), measured the same way, printing the same JSON line.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	url := flag.String("url", "", "the URL to GET")
	c := flag.Int("concurrency", 16, "workers and pool size")
	warmup := flag.Float64("warmup", 4, "seconds before the window")
	duration := flag.Float64("duration", 5, "seconds measured")
	flag.Parse()
	tr := &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var measuring, stop atomic.Bool
	var requests, errors, bytes int64
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64*1024)
			mine := make([]time.Duration, 0, 1<<16)
			for !stop.Load() {
				start := time.Now()
				resp, err := client.Get(*url)
				if err != nil {
					atomic.AddInt64(&errors, 1)
					continue
				}
				var got int64
				for {
					n, err := resp.Body.Read(buf)
					got += int64(n)
					if err != nil {
						break
					}
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if measuring.Load() {
					mine = append(mine, time.Since(start))
					atomic.AddInt64(&requests, 1)
					atomic.AddInt64(&bytes, got)
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(time.Duration(*warmup * float64(time.Second)))
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(time.Duration(*duration * float64(time.Second)))
	measuring.Store(false)
	seconds := time.Since(start).Seconds()
	cpu := cpuTime() - cpu0
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	done := atomic.LoadInt64(&requests)
	stop.Store(true)
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(f float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(float64(len(latencies))*f+0.999999) - 1
		if i < 0 {
			i = 0
		}
		return float64(latencies[i].Microseconds()) / 1000
	}
	per := done
	if per == 0 {
		per = 1
	}
	fmt.Printf("{\"handler\":\"go\",\"concurrency\":%d,\"seconds\":%.3f,\"requests\":%d,\"errors\":%d,\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"cpu_us_per_req\":%.2f,\"alloc_bytes_per_req\":%d,\"body_bytes_per_req\":%d,\"gen0\":%d,\"gen1\":0,\"gen2\":0,\"first_error\":null}\n",
		*c, seconds, done, atomic.LoadInt64(&errors), float64(done)/seconds, pct(0.5), pct(0.99), float64(cpu.Microseconds())/float64(per),
		int64(ms1.TotalAlloc-ms0.TotalAlloc)/per, atomic.LoadInt64(&bytes)/per, ms1.NumGC-ms0.NumGC)
	if atomic.LoadInt64(&errors) > 0 {
		os.Exit(1)
	}
}
