node {
  name              = "alpha"
  data_dir          = "data"
  call_timeout      = "1x"
  handshake_timeout = 5
  ping_interval     = "-10s"
  reconnect_min     = "0s"
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

  handle "echo" {
    timeout = "2 seconds"
  }
}
