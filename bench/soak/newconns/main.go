// New connections at a fixed rate for the soak: rate per second, each a new TCP connection that sends one GET with
// Connection: close and reads the answer to its end. Prints one JSON line at the end: connections made, errors.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port")
	path := flag.String("path", "/1k", "request path")
	rate := flag.Int("rate", 1000, "new connections per second")
	duration := flag.Duration("duration", 10*time.Second, "how long")
	flag.Parse()
	var ok, failed int64
	var firstError atomic.Value
	fail := func(err error) {
		atomic.AddInt64(&failed, 1)
		firstError.CompareAndSwap(nil, err.Error())
	}
	var wg sync.WaitGroup
	// On a schedule, not a ticker: a ticker drops the ticks a busy machine misses, and the rate with them; this
	// launches every connection that is due, catching up after a pause.
	start := time.Now()
	end := start.Add(*duration)
	var launched int64
	for now := start; now.Before(end); now = time.Now() {
		due := int64(now.Sub(start).Seconds() * float64(*rate))
		for ; launched < due; launched++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
				if err != nil {
					fail(err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", *path)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					fail(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(err)
					return
				}
				if resp.StatusCode != 200 {
					fail(fmt.Errorf("status %d", resp.StatusCode))
					return
				}
				atomic.AddInt64(&ok, 1)
			}()
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	first, _ := firstError.Load().(string)
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"connections": ok, "errors": failed, "first_error": first})
}
