//! The login session: a signed `session` cookie holding the user name, standing in for Flask's signed
//! session cookie (same name, same role; not the same encoding).

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

pub(crate) const COOKIE: &str = "session";

/// Hard-coded, like the real app's `app.secret_key`: the cookie proves only that this app wrote it.
const SECRET: &[u8] = b"bookinfo-stand-in: not a secret, just like the original";

/// The `Set-Cookie` value that logs `user` in.
pub(crate) fn login_cookie(user: &str) -> Option<HeaderValue> {
    let payload = URL_SAFE_NO_PAD.encode(user.as_bytes());
    let mac = URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET, payload.as_bytes()));
    HeaderValue::from_str(&format!("{COOKIE}={payload}.{mac}; HttpOnly; Path=/")).ok()
}

/// The `Set-Cookie` value that removes the session, as Flask sends when the session becomes empty.
pub(crate) fn logout_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/",
    )
}

/// The logged-in user, if the request carries a valid session cookie.
pub(crate) fn user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .find_map(|(_, value)| decode(value))
}

fn decode(value: &str) -> Option<String> {
    let (payload, mac) = value.split_once('.')?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    let expected = hmac_sha256(SECRET, payload.as_bytes());
    // Compare without an early exit so the check does not leak how much of the MAC matched.
    if mac.len() != expected.len()
        || mac
            .iter()
            .zip(expected)
            .fold(0, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return None;
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn request_with(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        headers
    }

    #[test]
    fn cookie_round_trips_and_rejects_forgeries() {
        let set = login_cookie("jason").unwrap();
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert_eq!(
            user(&request_with(&format!("theme=dark; {pair}"))).as_deref(),
            Some("jason")
        );

        let forged = format!("session={}.{}", URL_SAFE_NO_PAD.encode("admin"), "AAAA");
        assert_eq!(user(&request_with(&forged)), None);
        assert_eq!(user(&request_with("user=jason")), None);
    }
}
