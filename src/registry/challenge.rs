//! `WWW-Authenticate` challenges (RFC 7235 §4.1), as registries send them.
//!
//! Registries differ in spelling: quoted or bare values, odd spacing, several challenges in
//! one header or one header per challenge, scheme names in any case. The parser is lenient:
//! what it cannot read it skips, up to the next comma, instead of failing the whole header.

/// One challenge: a scheme (`Bearer`, `Basic`) and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of a parameter; names compare case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

/// Parses every challenge in one header value.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Cursor {
        s: header.as_bytes(),
        i: 0,
    };
    let mut challenges = Vec::new();
    loop {
        p.skip(|b| b == b',' || is_space(b));
        if p.eof() {
            break;
        }
        let Some(scheme) = p.token() else {
            p.skip_past_comma();
            continue;
        };
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
        };
        loop {
            p.skip(is_space);
            let start = p.i;
            let Some(name) = p.token() else { break };
            p.skip(is_space);
            if p.peek() != Some(b'=') {
                // A bare token after a comma starts the next challenge.
                p.i = start;
                break;
            }
            p.i += 1;
            p.skip(is_space);
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.bare()
            };
            challenge.params.push((name, value));
            p.skip(is_space);
            match p.peek() {
                Some(b',') => p.i += 1,
                None => break,
                Some(_) => p.skip_past_comma(),
            }
        }
        challenges.push(challenge);
    }
    challenges
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Cursor<'_> {
    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
    }

    fn skip_past_comma(&mut self) {
        while let Some(b) = self.peek() {
            self.i += 1;
            if b == b',' {
                break;
            }
            if b == b'"' {
                self.i -= 1;
                self.quoted();
            }
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(is_tchar);
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// An unquoted value: anything up to a comma or white space (some registries send
    /// `realm=https://...` without quotes, which is not a token but is unambiguous).
    fn bare(&mut self) -> String {
        let start = self.i;
        self.skip(|b| b != b',' && !is_space(b));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn quoted(&mut self) -> String {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_distribution_spec_example() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].is("bearer"));
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("Service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:samalba/my-app:pull,push")
        );
    }

    #[test]
    fn reads_gitlab_com_and_distribution_2_8_spellings() {
        let c = parse(r#"Bearer realm="https://gitlab.com/jwt/auth",service="container_registry""#);
        assert_eq!(c[0].param("service"), Some("container_registry"));
        let c = parse(
            r#"Bearer realm="http://127.0.0.1:9/jwt/auth",service="container_registry",error="invalid_token""#,
        );
        assert_eq!(c[0].param("error"), Some("invalid_token"));
    }

    #[test]
    fn tolerates_spaces_case_and_bare_values() {
        let c = parse(
            r#"BEARER   realm = https://r.example/token ,  service=registry , scope="a:b:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].is("Bearer"));
        assert_eq!(c[0].param("realm"), Some("https://r.example/token"));
        assert_eq!(c[0].param("service"), Some("registry"));
        assert_eq!(c[0].param("scope"), Some("a:b:pull"));
    }

    #[test]
    fn splits_several_challenges_in_one_header() {
        let c = parse(r#"Basic realm="Registry Realm", Bearer realm="https://x/jwt",service="s""#);
        assert_eq!(c.len(), 2);
        assert!(c[0].is("basic"));
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert!(c[1].is("bearer"));
        assert_eq!(c[1].param("service"), Some("s"));
    }

    #[test]
    fn unescapes_quoted_strings() {
        let c = parse(r#"Basic realm="say \"hi\", then \\ go""#);
        assert_eq!(c[0].param("realm"), Some(r#"say "hi", then \ go"#));
    }

    #[test]
    fn a_scheme_without_parameters_is_kept() {
        let c = parse("Negotiate, Basic realm=x");
        assert_eq!(c.len(), 2);
        assert!(c[0].is("negotiate"));
        assert_eq!(c[1].param("realm"), Some("x"));
    }

    #[test]
    fn garbage_never_panics_and_yields_what_it_can() {
        for junk in [
            "",
            ",,,",
            "\"unterminated",
            "Bearer realm=\"x",
            "=,=,=",
            "Bearer ,,, realm",
            "Bearer realm=\"a\" junk, service=\"s\"",
        ] {
            let _ = parse(junk);
        }
        let c = parse("Bearer realm=\"a\" junk, service=\"s\"");
        assert_eq!(c[0].param("realm"), Some("a"));
        assert_eq!(c[0].param("service"), Some("s"));
    }
}
