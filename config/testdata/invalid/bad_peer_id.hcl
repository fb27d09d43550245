node {
  name     = "alpha"
  data_dir = "data"
}

peer "mistyped" {
  id = "pn1a4easdqlbqgq4dyqcejbgfavcylrqgi2dmob2hq7eaqseizeeutfq4niky"
}

peer "prefix" {
  id = "xyzbyhraeiscmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}

peer "short" {
  id = "pn1byhraeiscmkbkfqxdamrugy4dupb6ibbeirsi"
}

peer "alphabet" {
  id = "pn1byhraei1cmkbkfqxdamrugy4dupb6ibbeirsijjge4ucskrlfqwqs2nvha"
}
