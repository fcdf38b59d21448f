;; The smallest Grid guest: a plain numeric export, no SDK, no imports.
;; `grid map examples/guests/wat/square.wat square --range 0..10`
(module
  (func $square (export "square") (param $x i64) (result i64)
    local.get $x
    local.get $x
    i64.mul)
  ;; Two arguments, floats: hypot(a, b).
  (func $hypot (export "hypot") (param $a f64) (param $b f64) (result f64)
    local.get $a
    local.get $a
    f64.mul
    local.get $b
    local.get $b
    f64.mul
    f64.add
    f64.sqrt))
