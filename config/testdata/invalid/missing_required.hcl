node {
  name = "alpha"
}

peer "beta" {
  address = "127.0.0.1:4041"
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = null
}
