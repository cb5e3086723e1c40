module loadclient

go 1.19
