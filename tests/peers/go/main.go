// A differential peer: Go's net/http server. It answers the first request on each connection with what it parsed, as
// JSON, then closes; a request it refuses gets Go's own error answer. Prints its port on start.
package main

import (
	"encoding/json"
	"os"
	"time"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

func main() {
	// `peer client PORT PATH`: Go's HTTP client sends one GET and prints what it parsed of the response.
	if len(os.Args) == 4 && os.Args[1] == "client" {
		client(os.Args[2], os.Args[3])
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.Header().Set("Connection", "close")
			w.WriteHeader(400)
			return
		}
		// Go folds Host into r.Host and removes it from the header map; put it back first, as it was sent.
		headers := [][]string{}
		if r.Host != "" {
			headers = append(headers, []string{"host", r.Host})
		}
		// Go moves Transfer-Encoding out of the header map, too.
		if len(r.TransferEncoding) > 0 {
			headers = append(headers, []string{"transfer-encoding", strings.Join(r.TransferEncoding, ", ")})
		}
		for name, values := range r.Header {
			for _, v := range values {
				headers = append(headers, []string{strings.ToLower(name), v})
			}
		}
		out, _ := json.Marshal(map[string]interface{}{"method": r.Method, "target": r.RequestURI, "headers": headers, "body": string(body)})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "close")
		w.Write(out)
	})
	http.Serve(l, handler)
}

func client(port, path string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://127.0.0.1:" + port + path)
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]string{"error": err.Error()})
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]string{"error": err.Error()})
		return
	}
	headers := [][]string{}
	for name, values := range resp.Header {
		for _, v := range values {
			headers = append(headers, []string{strings.ToLower(name), v})
		}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"status": resp.StatusCode, "headers": headers, "body": string(body)})
}
