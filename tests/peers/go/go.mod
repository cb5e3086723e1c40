module httputil.test/peer

go 1.19
