node {
  name     = "alpha"
  data_dir = "data"
  lisen    = "127.0.0.1:4040"
  colour   = "blue"
}

peers "beta" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}

plugin "echo" {
  command = "../bin/echo"
  sha256  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  restart = { max_crashes = 1 }
}
