//! Pointer checks and the `(buf, len, out_n)` string protocol.

use std::ffi::{CStr, c_char};

use crate::error::{Fail, FfiResult, algalon_result};

/// A shared reference to a handle, or `NULL_PARAMETER` naming `arg`.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, arg: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::null(arg))
}

/// A unique reference to a handle, or `NULL_PARAMETER` naming `arg`.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` for `'a` that nothing else uses.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, arg: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Fail::null(arg))
}

/// An out-param checked for NULL (written later, on success only).
pub(crate) fn arg_out<T>(p: *mut T, arg: &str) -> FfiResult<*mut T> {
    if p.is_null() {
        Err(Fail::null(arg))
    } else {
        Ok(p)
    }
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string live for `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, arg: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(Fail::null(arg));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Fail::new(
            algalon_result::InvalidArgument,
            format!("argument `{arg}` is not valid UTF-8 ({e})"),
        )
    })
}

/// The string protocol: checks `out_n` (and `buf` when `len > 0`), then
/// either writes `s` + NUL and sets `*out_n = s.len()`, or — when `len` is
/// too small — writes nothing to `buf`, sets `*out_n` to `s.len() + 1` and
/// fails with `INSUFFICIENT_SIZE`.
///
/// # Safety
///
/// `buf` is valid for `len` bytes of writes (or NULL); `out_n` is NULL or
/// valid for a write.
pub(crate) unsafe fn write_str(
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> FfiResult {
    let out_n = arg_out(out_n, "out_n")?;
    if buf.is_null() && len > 0 {
        return Err(Fail::null("buf"));
    }
    let needed = s.len() + 1;
    if len < needed {
        // SAFETY: checked non-NULL; valid by the caller's contract.
        unsafe { out_n.write(needed) };
        return Err(Fail::new(
            algalon_result::InsufficientSize,
            format!(
                "a buffer of {len} bytes is too small: {needed} bytes needed (including the NUL)"
            ),
        ));
    }
    // SAFETY: `buf` is non-NULL here (len >= 1) and valid for `len >= needed`
    // bytes; the source is a distinct Rust allocation.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        buf.add(s.len()).write(0);
        out_n.write(s.len());
    }
    Ok(())
}

/// `s` as a fixed-size NUL-terminated C array, cut at a UTF-8 boundary if
/// it would not fit (NVML's own buffers are this size, so it never is).
pub(crate) fn fixed<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    let mut end = s.len().min(N - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (dst, src) in out.iter_mut().zip(&s.as_bytes()[..end]) {
        *dst = *src as c_char;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_strings_are_terminated_and_cut_on_char_boundaries() {
        let a: [c_char; 4] = fixed("ab");
        assert_eq!(a, [b'a' as c_char, b'b' as c_char, 0, 0]);
        let b: [c_char; 4] = fixed("abcdef");
        assert_eq!(b[3], 0);
        let c: [c_char; 4] = fixed("aé€"); // 'é' is 2 bytes, '€' 3: "aé" fits in 3
        // SAFETY: NUL-terminated by construction.
        let back = unsafe { CStr::from_ptr(c.as_ptr()) };
        assert_eq!(back.to_str().expect("utf-8"), "aé");
    }
}
