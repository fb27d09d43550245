# Values are literals: no variables, functions, operators or interpolation.
node {
  name          = var.name
  data_dir      = upper("data")
  call_timeout  = "${"5"}s"
  max_handshakes = 1 + 1
  log_level     = true ? "info" : "debug"
  listen        = <<EOT
127.0.0.1:${4040}
EOT
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  args    = [-1, "${"x"}"]
  config  = { tiny = 1e-99999999, huge = -1e400, fine = -1.5, list = [for x in [1] : x] }
}
