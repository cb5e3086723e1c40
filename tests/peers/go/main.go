// A differential peer: Go's net/http server. It answers the first request on each connection with what it parsed, as
// JSON, then closes; a request it refuses gets Go's own error answer. Prints its port on start.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

func main() {
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
