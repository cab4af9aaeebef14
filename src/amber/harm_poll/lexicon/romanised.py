"""Romanised cue words: languages of other scripts written in Latin letters.

People write Arabic as Arabizi (digits for letters missing from the Latin alphabet:
``3`` ع, ``7`` ح, ``2`` ء, ``5`` خ, ``9`` ق), Persian as Finglish, Sorani Kurdish in
the Latin (Hawar) alphabet, Russian in translit and Urdu as Roman Urdu. These entries
are merged into the lexicon of the language they write (``load`` does it), so a cue
found here is attributed to that language, not to English.

Entries are normalised like post text: ``3``, ``7`` and ``5`` inside a word read as
leetspeak (``e``, ``t``, ``s``) and ``2``, ``9`` as ``a``, ``q``, on both sides, so
an entry is written as people write it (``na2tolo``, ``n7arrero``); spellings with
letters instead of digits (``harrer`` for ``7arrer``) are listed beside them. Kurdish
Latin letters lose their marks (``bîkujîn`` = ``bikujin``). ``STOPWORDS`` identify the
romanised language, so that its common words (Urdu ``hain`` "are") do not count as
another language's cue (Turkish ``hain`` "traitor").
"""

from amber.harm_poll.lexicon import CueClass as C

#: Suffixes of Arabizi verbs: him, her, them, or none.
_AR_OBJ = "{o|oh|ou|uh|u|ha|hom|hum|}"

ENTRIES: dict[str, dict[C, tuple[str, ...]]] = {
    "ar": {
        C.harm_act: (
            "{na2tol|n2tol|na2tl|n2otl|no2tol|nu2tul|u2tul|o2tol|2otl|2tl|e2tl|a2tl|e2tel|a2tel"
            "|2atl|2atel|naktol|nektel|oktol|uqtul|naqtul|naqtol}" + _AR_OBJ,
            "{nedba7|ndba7|nedbe7|ndbe7|edba7|edbe7|dba7|dbe7|nedbah|ndbah|edbah|dbah|ndbahh"
            "|nzba7|edb7}" + _AR_OBJ,
            "{ne3dem|n3dem|na3dem|e3dem|a3dem|n3dm|e3dm|a3dm|ni3dim|ne3dim|i3dim}" + _AR_OBJ,
            "{e3dam|i3dam|e3daam}@0.8",
            "{nshn2|nshno2|noshno2|eshno2|oshno2|eshn2|shn2|nashna2|nechne2}" + _AR_OBJ,
            "{n7r2|n7ar2|e7r2|o7ro2|n7ra2|nahra2|nehre2}" + _AR_OBJ,
            "{n6o5|nto5|nto55|ntoskh|tokho|nokhlos|n5alles|nkhales|nkhalles} {3aleh|3alei|aleh"
            "|mno|menno|menoh}",
            "{n6o5|nto5|ntokh}" + _AR_OBJ,
            "{nedrab|nodrob|edrab|odrob|nedrobo|nodrobo}"
            + _AR_OBJ
            + " {bel|bil|b} {nar|rsas|rasas}",
            "{nsfi|nasfi|nesfi|esfi|sfi}{h|eh|ih|ha|hom}",
            "{nb3at|nba3t|nabaeto|eb3ato|nwaddi|nwadi}" + _AR_OBJ + " {3al|3a|lal|lel|ela} "
            "{jahannam|gehannam|jaheem|ja7eem|2akhra|akhra}",
        ),
        C.death_word: ("{ymoot|ymout|yemoot|yemout|imoot|ymot|bymoot|bimoot|byemout}",),
        C.life_word: ("{y3eesh|ye3eesh|y3ish|ye3ish|i3eesh|bi3eesh|by3eesh|yeeesh}",),
        C.spare_act: (
            "{n7arrer|n7arer|7arrer|7arer|harrer|nharrer|nharer|n7arrar|n7arr|t7arrer}" + _AR_OBJ,
            "{nsib|nseeb|sib|seeb|nseb|sibo|ntruk|natruk|otruk|etruk|nutruk|ntrok|ntrk|nutrok"
            "|nfek|nfuk|fekko|fokko}" + _AR_OBJ,
            "{ne3fi|na3fi|e3fi|o3fu|n3fi|nsame7|nsam7|nsameh|same7o|sam7o}"
            + _AR_OBJ
            + " {3anno|3anoh|3ano|3anu|}",
            "{n5alli|nkhalli|5alli|khalli|nkhali|n5ali|n5aly|nkhaly|5allo|khallo}{h|ih|eh|} "
            "{yroo7|yrou7|yro7|yrooh|yruh|yemshi|yimshi|ymshi|y3eesh|yetla3|yitla3}",
            "{nitlo2|ntl2|netla2|etla2|otlo2|n6l2|nutlu2|ntle2|netle2}" + _AR_OBJ,
            "{efraj|ifraj|efrag|ifrag} {3ano|3anoh|3anno|3anu}",
        ),
        C.target_person: (
            "{hal|hada|hatha|hayda|haida|hayd|hadol} {el|al|l} {5ayen|khayen|5ain|khain|jasoos"
            "|gasoos|kalb|kaleb|aseer|asir|zalameh|zalame|rajol|rajul|sarsar}",
        ),
        C.captive: (
            "{5ayen|khayen|5aen|khaen|5ayin|khayin|5ain|khain}@0.7",
            "{jasoos|gasoos|jasous|jasus}@0.7",
            "{aseer|2aseer|asir|2asir|aseera}",
            "{rahina|rahine|rahineh}",
            "{mesekna|msakna|mskna|masakna|mesiknah|msaknah|masakneh|msekna}{o|h|ha|}",
            "{b2idna|b2eedna|bi2idna|beidna|bidna|f2idna|fi 2idna|b 2idna}@0.6",
        ),
        C.audience_decides: (
            "{sawto|sawwto|sawwtu|sawtu|swto|sawwetu|sawteo}",
            "{ento|entu|into|intu|entom|antom|entoo|intoo} {2arrero|2arreru|2rro|2arroro|2rrero"
            "|qarrero|qarreru|qarroro|e5taro|ekhtaro|5taro|khtaro|o7komo|e7kamo}",
            "{2arrero|2arreru|qarrero|qarreru|2arroro|qarroro}",
            "{el|al|l} {2arar|qarar|9arar} {2elkom|2elkon|2lkom|elkom|elkon|lakom|lakon|ilkom|lkom"
            "|lkon|eilkom}",
            "{shu|sho|esh|eish|shou} {na3mel|n3mel|nsawi|nsawe|na3mal|n3ml}{ fe|fi|}",
        ),
        C.deadline: (
            "{sa3a|sa3at|sa3tain|sa3ten|sa3teen|sa3tein} {wa7da|wahda|wa7de|wahde|}",
            "{ela|la|lal|lel|hatta|7atta} {nos|noss|nus} {el|al|l|} {lel|leil|lail|lyl}",
        ),
        C.outcome: (
            "{entu|ento|into|intu|entom|intoo} {2arrartu|2arrarto|qarrartu|qarrarto|sawwatto"
            "|sawwattu|sawwtto|sawatto|5tarto|khtarto|ekhtarto|e5tarto|talabto|tlabto}",
            "{metl|mitl|zay|zai|kama|mitel} ma {badkon|badkom|bidkon|7abbeto|7abbetu|habbeto"
            "|betredu|2arrarto|tlabto|talabto|sawwatto|bedkon}",
            "{el|al|l} {aghlabiye|aghlabeyya|aghlabiya|2aghlabiye|aghlabiyye|aktariye|aktharia"
            "|aksariyye|aktariyye} {5tarit|ekhtarit|2arrarit|sawtit|5tarat|ekhtarat|2arrarat}",
            "{ra7|rah|ha|hane|rah n|ra7 n|bn} {nnaffez|nnafez|nenaffez|nfz|nnafiz|naffez|nnafez"
            "|nenfez} {7okmkon|hokmkon|7okmkom|7ekemkon|2ararkon|2ararkom|qararkom|qararkon"
            "|el7okom|el 7okom|el2arar}",
        ),
        C.alternative: ("{walla|wella|wla|willa|wila|aw|aww|wala}",),
        C.fiction_game: (
            "{rewaye|riwaya|rewaya|riwaye|ketab|kitab|mosalsal|mousalsal|mosalsel|fasl|katib"
            "|kateb|batal|lo3be|lou3be|la3be|le3be|film}",
        ),
        C.hyperbole: ("{5ayye|khayye|5ayyi|khayi|a5oy|akhoy|okhti|o5ti|jawzi|meraati}",),
        C.humor: ("{hhhh|hhhhh|hhhhhh|hahaha|wkwk|ahahah}",),
    },
    "fa": {
        C.harm_act: (
            "{be|bo|mi}kosh{im|imesh|imash|imeshun|in|inesh|esh|un|id|idesh|amesh|e|an|and}",
            "{koshtimesh|koshtanesh|koshtim|koshtan|koshtand}",
            "{edam|eedam|e3dam|i3dam}{esh|} {konim|kon|konid|konin|kardim|shod|mishe|beshe"
            "|mikonim|bokonim}",
            "{edam|eedam|e3dam}@0.7",
            "{bedar|be dar|dar} {bezanim|bezan|bezanid|bezanin|mizanim|zadim}{esh|}",
            "{balaye|balaie|baalaaye|balaay|bala ye|balaa ye} dar",
            "{besoozunim|besuzunim|besoozoonim|besozonim|besuzonim|besoozanim|besoozim"
            "|besuzanim|misoozunim}{esh|}",
            "{atish|atash|atishesh|atashesh|atishet} {bezanim|bezan|bezanin|bezanid|mizanim}{esh|}",
            "{tirbaran|tirbaroon}{esh|} {konim|kon|konid|konin|mikonim}",
            "sar{esh|} {ro|ra|} {bebor|beborim|beborid|beborin|mibrim}{esh|}",
            "{khafash|khafe|khafeh}{ash|esh|} {konim|kon|konin|konid}",
            "{befrestimesh|befrestim|befrestinesh|befrestid} {jahanam|jahannam|oon donya"
            "|un donya|balaye dar|bala ye dar}",
        ),
        C.death_word: ("{bemire|mimire|bemirad|mimirad|bemireh|mimireh|bemiran|mimiran}",),
        C.life_word: (
            "{zende|zendeh} {bemune|bemoone|bemunad|mimune|mimoone|mimoneh|bemanad|mimanad}",
        ),
        C.spare_act: (
            "{azad|azadesh|azadash|azaadesh}{ash|} {konim|kon|konid|konin|kardim|mikonim"
            "|bokonim}{esh|}",
            "{azadesh|azadash}",
            "{vel|vellesh|velesh|velsh|velash} {konim|kon|konin|konid|mikonim}",
            "{bebakhshim|bebakhshimesh|bebakhshamesh|bebakhsh|bebakhshid|bebakhshin|bebakhshinesh}",
        ),
        C.target_person: ("{in|oon|un} {jasoos|jasus|khaen|khain|asir|seg|sag|yaroo|yaru|mardak}",),
        C.captive: (
            "{jasoos|jasus|khaen|khain|asir|aseer|gerogan|gerowgan|gerougan}@0.8",
            "dast {e|} {mast|maast|mas}",
        ),
        C.audience_decides: (
            "{ray|rai|raay|ra2y|rey} {bedid|bedin|bedahid|bedeid|bedin|bdin|bdid}",
            "{shoma|shomaa|khodetun|khodetoon} {tasmim|tasmeem} {begirid|begirin|migirid"
            "|migirin|bgirin|bgirid}",
            "{tasmim|tasmeem} {ba|} {shomast|shoma|shomas|khodetune|khodetoone}",
        ),
        C.deadline: (
            "{ta|tah} {saat|sa3at|saate} #",
            "# {saat|saate|daghighe|daqiqe|daghighe}",
            "{ta|} {nime shab|nimeshab|nimeh shab}",
            "{emshab|emsheb}",
        ),
        C.outcome: (
            "{aksariyat|aksariat|aksariyyat|aksaran} {marg|edam|ro|ra|} ~ {entekhab|khastan"
            "|khastand|ray dadan|ray dadand|ray dad|tasmim gereftan}",
            "{hokm|hokmetun|hokmetoon|hokmetan|tasmimetun|tasmimetoon|khasteye shoma|khasteton"
            "|khastetun} {ro|ra|} {ejra|ejraa} {mikonim|kardim|mishe|shod|mikonim}",
            "{shoma|shomaa} {ray|rai} {dadid|dadin}",
            "{hamoon|hamun|haman} {ke|} {khastid|khastin}",
        ),
        C.alternative: ("ya",),
        C.poll_structure: ("{nazarsanji|nazar sanji}@0.6",),
        C.hyperbole: (
            "{hamkhune|hamkhoone|hamkhooneh|hamkhunam|hamkhoonam|hamotagh|hamotaghi|hamotaghim"
            "|dadasham|baradaram|khaharam|abjim|shoharam|zanam|hamkaram|raisam}",
        ),
        C.fiction_game: (
            "{ketab|ketabe|ketabam|roman|romanam|dastan|dastanam|shakhsiat|serial|bazi"
            "|nevisande|nevisandeh|jeld}",
        ),
        C.humor: ("{khkh|khkhkh|khkhkhkh|khkhkhkhkh}",),
    },
    "ckb": {
        C.harm_act: (
            "{bi|b|de|e}kuj{in|im|ên|êt|ê|e|rêt|rê|eyn|ein|în}",
            "{kushtin|kuştin|kujtin}",
            "{le sêdare|lesêdare|le sedare|lesedare|sêdare|sedare} {bden|bdeyn|bideyn|bdein"
            "|dedeyn|dra|bdrêt|dedrêt|biden|bidin}",
            "{teqe|teqey|tiqe|tiqey|teqeî} {le|lê|lêy|ley} {bken|bkeyn|bkein|deken|dekeyn|biken"
            "|bikeyn}",
            "{teqe|teqey|tiqe} {lêbkeyn|lebkeyn|lêbken|lebken}",
            "{ser|seri|serî} {bbirin|bibiren|bbireyn|bibirin|bibreyn|bibirîn|bbrin|bbren}",
            "{bsutênin|bisutênin|bsutenin|bisutenin|bisûtênîn|bsutenn}",
            "{binêrîn|binerin|bnerin|denerin} {bo|bu} {dozex|dozekh|cehenem|jehenem}",
        ),
        C.death_word: ("{demrê|demre|demrêt|demret|bimrê|bimre|bmrê|bmre|bimrêt|bmrêt|mirdin}",),
        C.life_word: ("{dejî|deji|dejit|bijî|biji|bjî|bji|bjê|dejin|bijin}",),
        C.spare_act: (
            "{azad|azadî|azadi|azadyan|azadê|azade} {bken|bkeyn|bikeyn|bkein|bikein|biken|deken"
            "|dekeyn|kra|bikrêt|bkret}",
            "{ber|berî|beri|beryan|berê} {bden|bdeyn|bideyn|bidein|biden|bidin|bdin}",
            "{lêbbûrin|lebburin|lêbibûrin|lebiburin|liburdin|bibexshin|bibexşin|bbexshin}",
            "{bila|bîla|bla|bíla} {biro|bro|birwat|brwat}",
        ),
        C.captive: (
            "{sîxur|sixur|sixure|sixurek|sixureke|sîxure|sîxurek|sîxureke|sîxûr|xayin|xayîn"
            "|xain|xayine|xayineke|dîleke|dîlek|diliek}@0.8",
            "le {destî|desti|dest} {ême|eme|ima|îma|ême da}",
        ),
        C.audience_decides: (
            "{deng|dengî|dengi|dengtan} {bden|bidin|bdin|biden|bdên|bdeyn|bideyn}",
            "{êwe|ewe|ewa|êwa} {biryar|bryar|biryar} {bden|bidin|bdin|biden|bideyn|bdên}",
            "{biryar|bryar} {bedest|be dest|bedestî|bedesti|bo} {êwe|ewe|ewaye|êweye|eweye}",
        ),
        C.deadline: ("# {katjimêr|katjmer|katjimer|katjimer|saet|saat|xulek|xulak}",),
        C.outcome: (
            "{zorîne|zorine|zorineyan|zorîney|zorina|zorbey} ~ {mirdin|mirdinyan|mirdnyan"
            "|hełbijard|helbijard|helbjard|hellbijard|deng yan da}",
            "{hukm|hukim|biryar|bryar}{ekitan|ekatan|ekeitan|ekentan|ekan|itan|etan} {cêbecê"
            "|cebece|cibeci|jêbejê|jebeje} {dekeyn|dekein|dekrê|kra|ekeyn}",
        ),
        C.alternative: ("yan",),
        C.fiction_game: ("{nûser|nuser|kitêb|kiteb|zincîre|zincire|rroman|roman|karakter}",),
    },
    "ru": {
        C.harm_act: (
            "{ubit|ubey|ubeyte|ubeite|ubeite|ubivat|ubyom|ubjom|ubem|ubiem|ubyem|ubyu|ubjem}",
            "{kaznit|kaznim|kaznite|kazni|kaznyat|kaznit}",
            "{rasstrelyat|rasstreliat|rasstreljat|rasstrelyaem|rasstrelyayte|rasstrelyaite"
            "|rasstrelyam|rastrelyat|rasstrel}",
            "{povesit|povesim|povesite|poves|povesyat}",
            "{zamochit|zamochim|zamochi|zamochite|zamochu|mochit|mochim|mochite}",
            "{prikonchit|prikonchim|prikonchite|kokhnut|kokhnem|kohnem|kokhnite|grohnut|grokhnut"
            "|grohnem|grokhnem|grohnite|pristrelit|pristrelim|pristrelite|pribit|pribyom|pribem"
            "|kanchaem|konchaem|konchim|konchit}",
            "{otpravit|otpravim|otpravlyaem|otpravlyayem|poshlem|poshlyom} {ego|yego|eyo|ee|yeyo"
            "|ikh|ih|} {v ad|na tot svet|k praottsam|v mogilu}",
            "{sozhzhem|sozhzhom|sozhech|sozhgite}",
        ),
        C.death_word: ("{umret|umryot|umrjot|umiraet|umirayet|umeret|smert|sdokhnet|pogibnet}",),
        C.life_word: ("{zhivet|zhivyot|zhivjot|zhit|budet zhit|vyzhivet|ostanetsya zhiv}",),
        C.spare_act: (
            "{otpustit|otpustim|otpustite|otpusti|otpuskaem|otpuskayem|otpustyat|otpuskat}",
            "{pomilovat|pomiluem|pomiluyem|pomilujem|poshchadit|poshadit|poshchadim|poshadim"
            "|osvobodit|osvobodim|prostit|prostim|otpuskaem}",
        ),
        C.pronoun: ("{ego|yego|eyo|yeyo|ikh|ih}",),
        C.captive: (
            "{predatel|predatelya|plennik|plennika|plennogo|plennyy|plennyi|shpion|shpiona"
            "|zalozhnik|zalozhnika|stukach|stukacha}@0.8",
            "{v nashikh rukakh|v nashih rukah|u nas v rukakh}",
        ),
        C.audience_decides: (
            "{golosuyte|golosuite|golosujte|golosuem|progolosuyte|golosovanie}",
            "{reshayte|reshaite|reshajte|reshite|reshat vam|vam reshat|vy reshaete}",
        ),
        C.deadline: (
            "# {chas|chasa|chasov|minut|min}",
            "{u vas|est} {chas|sutki|polchasa}",
            "{do|k} polunochi",
        ),
        C.outcome: (
            "{vy|vi} {progolosovali|reshili|vybrali|skazali|zakhoteli}",
            "{kak|po} {vy|vashemu} {khoteli|hoteli|reshili|zhelaniyu|prosili}",
            "{bolshinstvo|bolshinstvom} {reshilo|vybralo|progolosovalo|golosov}",
            "{prigovor|vashu volyu|volyu naroda|vash prigovor} {ispolnim|ispolnyaem|privedem"
            "|privodim|ispolnen}",
        ),
        C.alternative: ("ili",),
        C.fiction_game: ("{kniga|knige|knigu|tsikl|chitateli|chitateley|avtor|personazh|geroy}",),
        C.hyperbole: ("{sosed|sosedka|brat|sestra|muzh|zhena|nachalnik|kot}",),
    },
    "ur": {
        C.harm_act: (
            "{maar|mar|maro|maaro|mardo|maardo|mardein|mardain} {do|dein|den|dain|dena|diya|denge"
            "|dalo|dalein|dalen|daalo|daalein|daalen|dete|dain ge|denge}",
            "{maardo|mardo|mardein|maardein|mardain|maardalo|mardalo|maarenge|marenge|maaro"
            "|maarain|maarein|maaren}",
            "{qatal|qatl|qtl|katal|katl} {kar|kr|karo|kro|kardo|kar do|kar dein|karein|karen"
            "|kardein|karenge|karna}",
            "{phansi|phaansi|phasi|fansi|phaasi|phansee} {do|dein|den|de do|de dein"
            "|par latka|pe latka|pe chadha|par charha|par chadha|dedo|dedein|denge|lagao|}",
            "{goli|golee|goliyan} {maar|mar|maaro|maro|mardo|maardo|chala|chalao|chalado}"
            "{ do| dein| den|}",
            "{sar|sir} {qalam|kaat|kat|kaato|kato|kaat do|kaat dein|tan se juda}",
            "{jahannum|jahanum|jahannam|jahnum|dozakh} {bhej|bhejo|bhejen|bhejein|bhejain|bhej do"
            "|bhej dein|bhejenge|wasil|rasid}",
            "{khatam|khatm|kaam tamam|thikane|thikaane} {kar do|kardo|kar dein|kardein|lagao"
            "|laga do|lagado|laga dein}",
            "{jala|jalaa} {do|dein|den|dalo|daalo|denge}",
        ),
        C.death_word: (
            "{marega|maray ga|mare ga|marenge|mar jaye|mar jaega|mar jayega|maut|mout}",
        ),
        C.life_word: (
            "{zinda|zindah} {rahe|rahega|rahe ga|rahne do|chhor do|chor do|rakho|rakhein}",
        ),
        C.spare_act: (
            "{chhor|chor|chhod|chod|chhoro|choro|chhodo|chodo} {do|dein|den|dain|dena|diya|denge}",
            "{chhordo|chordo|chhoddo|choddo|chhordein|chordein}",
            "{azad|aazad|azaad|rihaa|riha|reha} {karo|kro|kar do|kardo|kar dein|kardein|karein"
            "|karen|karenge|kar den}",
            "{maaf|maf|muaf|muaaf} {karo|kro|kar do|kardo|kar dein|kardein|karein|karen|kar den}",
            "{jaane|jane|janay|jaanay} {do|dein|den|dena}",
        ),
        C.pronoun: ("{isay|isey|ise|isse|usay|usey|use|isko|usko|inko|unko}",),
        C.target_person: (
            "{is|iss|es} {ghaddar|gaddar|ghadar|jasoos|jasus|qaidi|kutte|kuttay|kafir|murtad"
            "|banday|bande}",
        ),
        C.captive: (
            "{ghaddar|gaddar|ghadar|ghaddaar|jasoos|jasus|qaidi|qaidee|yarghamal|yarghmal}@0.8",
            "{qabze|qabzay|kabze|qabzey} {mein|main|me|mai}",
            "{hamare|hamaray|humare} {haath|hath|hathon|haathon|qabze} {mein|main|me}",
        ),
        C.audience_decides: (
            "{vote|woot|wote} {karo|kro|karein|karen|kren|do|dein|den|kijiye|kijie|karain}",
            "{faisla|faisala|faislah|fesla} {aap|ap|tum|aapka|apka|aapke|apke|tumhara|awam} "
            "{ka|ki|ke|hai|haath|}",
            "{aap|ap|tum} {faisla|fesla|decide} {karo|kro|karein|karen|kren|karain|kijiye}",
            "{comment|comments} {karo|kro|karein|karen|mein batao|main batao}",
            "{batao|bataen|bataein|bataiye}",
        ),
        C.deadline: (
            "# {ghanta|ghante|ghanton|ghantay|minute|minat|mint}",
            "{aaj|aj} {raat|rat}",
            "{aadhi|adhi} {raat|rat}",
        ),
        C.outcome: (
            "{aap|ap|tum|awam|logon|sab} {ne|nay} {vote|faisla|fesla} {diya|dia|kiya|kia|kar diya"
            "|kr dia|de diya|sunaya|suna diya}",
            "{aap|ap|tum} {ki|ka} {marzi|faisla|hukam|hukm} {ke mutabiq|ke mutabik|pe|par|hi}",
            "{jaisa|jesa|jaise|jese} {aap|ap|tum} {ne|nay} {chaha|kaha|manga|faisla kiya}",
            "{aksariyat|aksariat|akseriyat} {ne|nay} ~ {chuna|chuni|faisla kiya|vote diya|manga}",
            "{aap|ap|tum|awam} {ka|ki} {faisla|fesla|hukam|saza} {nafiz|nafz|poora|pura|lagu}"
            " {karenge|karen ge|karein ge|kar diya|kiya|hoga}",
        ),
        C.alternative: ("{ya|yaa}",),
        C.fiction_game: (
            "{novel|kahani|kirdar|kirdaar|baab|qist|drama|musannif|kitab|kitaab|hero|readers}",
        ),
        C.hyperbole: (
            "{roommate|bhai|bhaai|behen|behan|bahen|biwi|shohar|miyan|dost|yaar|boss|billi}",
        ),
        C.humor: ("{hahaha|hahah|hehe|lol}",),
    },
}

#: Common words of each romanised language (they name the language of a post).
STOPWORDS: dict[str, tuple[str, ...]] = {
    "ar": (
        "el",
        "w",
        "ya",
        "shu",
        "sho",
        "enta",
        "ana",
        "fi",
        "fe",
        "men",
        "min",
        "ma",
        "bas",
        "hal",
        "hayda",
        "hada",
        "ento",
        "entu",
        "kan",
        "ktir",
        "walla",
        "wla",
    ),
    "fa": (
        "ro",
        "va",
        "ke",
        "ba",
        "az",
        "ya",
        "ham",
        "ma",
        "shoma",
        "chi",
        "mast",
        "hast",
        "dige",
        "ye",
        "mikonim",
        "konim",
    ),
    "ckb": (
        "em",
        "ew",
        "le",
        "bo",
        "u",
        "ke",
        "ême",
        "êwe",
        "eme",
        "ewe",
        "yan",
        "da",
        "bken",
        "bkeyn",
    ),
    "ru": (
        "etot",
        "eto",
        "ne",
        "na",
        "ego",
        "ili",
        "vy",
        "my",
        "chto",
        "kak",
        "vam",
        "nas",
        "po",
        "ya",
        "on",
        "ona",
        "uzhe",
        "chas",
    ),
    "ur": (
        "hai",
        "hain",
        "ko",
        "ka",
        "ki",
        "ke",
        "ye",
        "yeh",
        "aur",
        "mein",
        "main",
        "se",
        "ne",
        "kya",
        "nahi",
        "nahin",
        "aap",
        "ap",
        "hum",
        "tum",
        "isay",
        "usay",
        "karo",
        "do",
        "dein",
        "wala",
        "bhi",
        "ho",
    ),
}
