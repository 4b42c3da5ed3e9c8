module secretgate.example/verify

go 1.19
