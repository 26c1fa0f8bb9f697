//! The pages' words, Dutch and English (B1: short sentences, no jargon), in one table: one
//! place to read and review every text the Persoon sees.

use super::{Lang, Topic};
use crate::vert::Exception;

/// A page's words. `{pgo}` is replaced by the client's name, `{minutes}` by the flow's time
/// to live; both before escaping.
pub(super) struct Words {
    pub title: &'static str,
    pub paragraphs: &'static [&'static str],
    pub link: &'static str,
}

pub(super) fn words(topic: Topic, lang: Lang) -> Words {
    use Exception::*;
    match (topic, lang) {
        (Topic::Exception(Auth1a), Lang::Nl) => Words {
            title: "Deze aanvraag kunnen we niet verwerken",
            paragraphs: &[
                "De app of website die u hierheen stuurde, is bij ons niet bekend. Of {pgo} gaf een adres op dat niet klopt.",
                "Er zijn geen gegevens gedeeld. U kunt deze pagina sluiten.",
                "Blijft dit gebeuren? Neem dan contact op met de maker van uw app en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Exception(Auth1a), Lang::En) => Words {
            title: "We cannot process this request",
            paragraphs: &[
                "The app or website that sent you here is not known to us, or {pgo} gave an address that is not right.",
                "No data has been shared. You can close this page.",
                "If this keeps happening, contact the maker of your app and mention the code below.",
            ],
            link: "",
        },
        (Topic::Exception(Vert1), Lang::Nl) => Words {
            title: "Inloggen namens een ander is niet gelukt",
            paragraphs: &[
                "{pgo} vroeg om de gegevens van iemand anders. Maar u heeft bij het inloggen niet gekozen om namens die persoon in te loggen, of u koos een andere soort machtiging.",
                "Daarom stoppen we hier. Er zijn geen gegevens gedeeld.",
                "Wilt u het opnieuw proberen? Ga terug naar {pgo} en begin opnieuw. Kies bij het inloggen met DigiD voor inloggen namens de ander.",
                "Lukt het niet? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Exception(Vert1), Lang::En) => Words {
            title: "Signing in on behalf of someone else did not work",
            paragraphs: &[
                "{pgo} asked for someone else's data. But when you signed in, you did not choose to act on behalf of that person, or you chose another kind of authorisation.",
                "So we stop here. No data has been shared.",
                "Want to try again? Go back to {pgo} and start again. When you sign in with DigiD, choose to sign in on behalf of the other person.",
                "Still not working? Contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::Exception(Vert2), Lang::Nl) => Words {
            title: "U logde in namens een ander",
            paragraphs: &[
                "U heeft bij het inloggen gekozen om namens iemand anders in te loggen. Maar {pgo} vroeg om uw eigen gegevens.",
                "Daarom stoppen we hier. Er zijn geen gegevens gedeeld.",
                "Wilt u uw eigen gegevens ophalen? Ga terug naar {pgo} en log opnieuw in, nu voor uzelf.",
                "Lukt het niet? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Exception(Vert2), Lang::En) => Words {
            title: "You signed in on behalf of someone else",
            paragraphs: &[
                "When you signed in, you chose to act on behalf of someone else. But {pgo} asked for your own data.",
                "So we stop here. No data has been shared.",
                "Want to get your own data? Go back to {pgo} and sign in again, this time for yourself.",
                "Still not working? Contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::Exception(Vert4), Lang::Nl) => Words {
            title: "De geboortedatum klopt niet",
            paragraphs: &[
                "U wilde gegevens ophalen namens iemand anders. {pgo} gaf een geboortedatum door. Die is niet dezelfde als de geboortedatum van de persoon namens wie u inlogde.",
                "Daarom zijn er geen gegevens gedeeld.",
                "Ga terug naar {pgo}. Kijk daar of u de goede persoon en geboortedatum heeft gekozen.",
                "Lukt het niet? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "Terug naar {pgo}",
        },
        (Topic::Exception(Vert4), Lang::En) => Words {
            title: "The date of birth does not match",
            paragraphs: &[
                "You wanted to get data on behalf of someone else. {pgo} gave a date of birth that is not the date of birth of the person you signed in for.",
                "So no data has been shared.",
                "Go back to {pgo} and check that you chose the right person and date of birth.",
                "Still not working? Contact your healthcare provider and mention the code below.",
            ],
            link: "Back to {pgo}",
        },
        (Topic::Exception(Expired), Lang::Nl) => Words {
            title: "Dit duurde te lang",
            paragraphs: &[
                "Het inloggen duurde langer dan {minutes} minuten. Om uw gegevens te beschermen, stoppen we daarom.",
                "Er zijn geen gegevens gedeeld.",
                "Ga terug naar {pgo} en probeer het opnieuw.",
                "Lukt het niet? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Exception(Expired), Lang::En) => Words {
            title: "This took too long",
            paragraphs: &[
                "Signing in took longer than {minutes} minutes. To protect your data, we stop here.",
                "No data has been shared.",
                "Go back to {pgo} and try again.",
                "Still not working? Contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::Exception(AlreadyUsed), Lang::Nl) => Words {
            title: "Deze inlog is al gebruikt",
            paragraphs: &[
                "U bent al ingelogd voor {pgo}. Een tweede keer kan niet met dezelfde inlog.",
                "Er zijn geen extra gegevens gedeeld.",
                "Ga terug naar {pgo}. Lukt het daar niet? Begin dan opnieuw vanuit {pgo}.",
                "Blijft dit gebeuren? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Exception(AlreadyUsed), Lang::En) => Words {
            title: "This login was already used",
            paragraphs: &[
                "You already signed in for {pgo}. The same login cannot be used a second time.",
                "No further data has been shared.",
                "Go back to {pgo}. If that does not work, start again from {pgo}.",
                "If this keeps happening, contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::Exception(AgeOnRecord), Lang::Nl) => Words {
            title: "Namens deze persoon kunt u zo niet inloggen",
            paragraphs: &[
                "U wilde gegevens ophalen namens iemand anders. Maar die persoon heeft niet de leeftijd die bij deze manier van inloggen hoort.",
                "Voor een kind jonger dan 12 jaar logt u in als ouder met gezag. Voor iemand van 16 jaar of ouder logt u in met een machtiging. Voor een kind van 12 tot 16 jaar kan het niet op deze manier.",
                "Daarom zijn er geen gegevens gedeeld. Ga terug naar {pgo} en kies daar de goede manier.",
                "Lukt het niet? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "Terug naar {pgo}",
        },
        (Topic::Exception(AgeOnRecord), Lang::En) => Words {
            title: "You cannot sign in for this person this way",
            paragraphs: &[
                "You wanted to get data on behalf of someone else. But that person is not of the age that goes with this way of signing in.",
                "For a child younger than 12, you sign in as a parent with parental authority. For someone aged 16 or older, you sign in with an authorisation (machtiging). For a child aged 12 to 15, it cannot be done this way.",
                "So no data has been shared. Go back to {pgo} and choose the right way there.",
                "Still not working? Contact your healthcare provider and mention the code below.",
            ],
            link: "Back to {pgo}",
        },
        (Topic::Exception(FailClosed | Auth1b | Vert3 | AgeAsked), Lang::Nl) => Words {
            title: "Er ging iets mis",
            paragraphs: &[
                "We konden niet controleren of het inloggen goed ging. Daarom zijn er geen gegevens gedeeld.",
                "Probeer het later opnieuw vanuit uw app.",
                "Blijft dit gebeuren? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Exception(FailClosed | Auth1b | Vert3 | AgeAsked), Lang::En) => Words {
            title: "Something went wrong",
            paragraphs: &[
                "We could not check that signing in went well. So no data has been shared.",
                "Please try again later from your app.",
                "If this keeps happening, contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::Unreachable, Lang::Nl) => Words {
            title: "Deze dienst is nu niet bereikbaar",
            paragraphs: &[
                "Wij kunnen uw zorgaanbieder nu niet bereiken. Er zijn geen gegevens gedeeld.",
                "Probeer het over een paar minuten opnieuw vanuit uw app.",
                "Blijft dit gebeuren? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::Unreachable, Lang::En) => Words {
            title: "This service cannot be reached right now",
            paragraphs: &[
                "We cannot reach your healthcare provider right now. No data has been shared.",
                "Please try again from your app in a few minutes.",
                "If this keeps happening, contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::TimedOut, Lang::Nl) => Words {
            title: "Deze dienst reageert niet op tijd",
            paragraphs: &[
                "Uw zorgaanbieder gaf niet op tijd antwoord. Er zijn geen gegevens gedeeld.",
                "Probeer het over een paar minuten opnieuw vanuit uw app.",
                "Blijft dit gebeuren? Neem dan contact op met uw zorgaanbieder en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::TimedOut, Lang::En) => Words {
            title: "This service did not answer in time",
            paragraphs: &[
                "Your healthcare provider did not answer in time. No data has been shared.",
                "Please try again from your app in a few minutes.",
                "If this keeps happening, contact your healthcare provider and mention the code below.",
            ],
            link: "",
        },
        (Topic::UriTooLong, Lang::Nl) => Words {
            title: "Deze aanvraag is te lang",
            paragraphs: &[
                "De link die u gebruikte is te lang. Er zijn geen gegevens gedeeld.",
                "Ga terug naar uw app en probeer het opnieuw.",
                "Blijft dit gebeuren? Neem dan contact op met de maker van uw app en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::UriTooLong, Lang::En) => Words {
            title: "This request is too long",
            paragraphs: &[
                "The link you used is too long. No data has been shared.",
                "Go back to your app and try again.",
                "If this keeps happening, contact the maker of your app and mention the code below.",
            ],
            link: "",
        },
        (Topic::TooLarge, Lang::Nl) => Words {
            title: "Deze aanvraag is te groot",
            paragraphs: &[
                "U stuurde meer gegevens dan wij aannemen. Er zijn geen gegevens gedeeld.",
                "Ga terug en probeer het opnieuw.",
            ],
            link: "",
        },
        (Topic::TooLarge, Lang::En) => Words {
            title: "This request is too large",
            paragraphs: &[
                "You sent more data than we accept. No data has been shared.",
                "Go back and try again.",
            ],
            link: "",
        },
        (Topic::BodyTimedOut, Lang::Nl) => Words {
            title: "Deze aanvraag duurde te lang",
            paragraphs: &["Uw gegevens kwamen niet op tijd aan. Probeer het opnieuw."],
            link: "",
        },
        (Topic::BodyTimedOut, Lang::En) => Words {
            title: "This request took too long",
            paragraphs: &["Your data did not arrive in time. Please try again."],
            link: "",
        },
        (Topic::MethodNotAllowed | Topic::BadRequest, Lang::Nl) => Words {
            title: "Deze aanvraag kunnen we niet verwerken",
            paragraphs: &[
                "Er klopt iets niet aan de link die u gebruikte. Er zijn geen gegevens gedeeld.",
                "Ga terug naar uw app en probeer het opnieuw.",
                "Blijft dit gebeuren? Neem dan contact op met de maker van uw app en noem de code hieronder.",
            ],
            link: "",
        },
        (Topic::MethodNotAllowed | Topic::BadRequest, Lang::En) => Words {
            title: "We cannot process this request",
            paragraphs: &[
                "Something is wrong with the link you used. No data has been shared.",
                "Go back to your app and try again.",
                "If this keeps happening, contact the maker of your app and mention the code below.",
            ],
            link: "",
        },
    }
}
