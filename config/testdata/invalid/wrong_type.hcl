node {
  name           = ["alpha"]
  data_dir       = "data"
  max_handshakes = "many"
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  args    = "-v"
  env     = { A = ["x"] }
  config  = "dir=/tmp"
}

discovery {
  mdns       = "yes"
  interfaces = ["eth0", ["eth1"]]
}
