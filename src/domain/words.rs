//! Numbers in words, the way agreements spell them: "thirty-six (36)".

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// `36` → `thirty-six`, `120` → `one hundred twenty`. Numbers of 1000 or more print as digits.
pub fn number_words(n: u32) -> String {
    match n {
        0..=19 => ONES[n as usize].to_string(),
        20..=99 => {
            let (t, o) = (n / 10, n % 10);
            if o == 0 { TENS[t as usize].to_string() } else { format!("{}-{}", TENS[t as usize], ONES[o as usize]) }
        }
        100..=999 => {
            let (h, r) = (n / 100, n % 100);
            if r == 0 {
                format!("{} hundred", ONES[h as usize])
            } else {
                format!("{} hundred {}", ONES[h as usize], number_words(r))
            }
        }
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::number_words;

    #[test]
    fn spells_contract_numbers() {
        assert_eq!(number_words(1), "one");
        assert_eq!(number_words(10), "ten");
        assert_eq!(number_words(36), "thirty-six");
        assert_eq!(number_words(60), "sixty");
        assert_eq!(number_words(120), "one hundred twenty");
        assert_eq!(number_words(1000), "1000");
    }
}
