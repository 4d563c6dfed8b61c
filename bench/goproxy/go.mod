module ferroshop.example/goproxy

go 1.19
