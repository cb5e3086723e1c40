module httputil.bench/newconns

go 1.19
