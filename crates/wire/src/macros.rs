//! `code_point!`: newtypes for numbers from the wire whose unknown values round-trip.

/// Declares a newtype over an integer with named associated constants, in spec order.
///
/// Unlike an enum with an `Unknown(n)` variant, a known value read from the wire always compares
/// equal to its constant, and an unknown one is kept as it is. `Display` prints the short name
/// given after `=>`, or the number in hex.
macro_rules! code_point {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($ty:ty) {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $text:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);

        impl $name {
            $(
                $(#[$vmeta])*
                pub const $variant: Self = Self($value);
            )*

            /// The short name of a value the specification defines, `None` for any other.
            pub const fn name(self) -> Option<&'static str> {
                $(
                    if self.0 == $value {
                        return Some($text);
                    }
                )*
                None
            }
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{:#x}", self.0),
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}::{}({:#x})", stringify!($name), name, self.0),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }
    };
}

/// Declares a zero-copy view over a buffer with the lifecycle every format shares:
/// `new_unchecked`, `new_checked` (which calls the format's own `check_len`) and `into_inner`.
macro_rules! view {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer without checking its length (for a buffer the caller sized).
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps a buffer after `check_len`: the way to read untrusted input.
            pub fn new_checked(buffer: T) -> $crate::Result<Self> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// Returns the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}
